-- sweep: settle expired leases at their estimate; reply: how many
return sweep()
