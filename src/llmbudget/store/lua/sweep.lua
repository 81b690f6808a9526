-- sweep: settle expired leases at their estimate, forget ended windows' counters from the
-- index; reply: how many leases were settled
local n = sweep()
prune_counters()
return n
