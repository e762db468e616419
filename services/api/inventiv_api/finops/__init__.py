"""The workspace's costs, token usage and budget, as the finops job bills them.

`ranges` parses and cuts time ranges, `costs` reads the cost of a range from the
billing rollups, `reports` and `token_usage` build the answers from it, `budget` reads
and sets the monthly budget; `router` is the /finops surface."""
