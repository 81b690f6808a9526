"""Drop-in compatibility layers for other token-budget libraries.

``llmbudget.compat.tbcontracts`` speaks the API of ``token-budget-contracts`` (``tbcontracts``)
name for name, on llmbudget's governor: change one import and keep your code.
See ``docs/compat-tbcontracts.md``.
"""
