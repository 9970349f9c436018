"""The staff trace viewer (/admin/agent-traces/): page shells, their templates and the
ES modules that read traces from the GraphQL API; and the admin entry for agent traces,
which forwards to it. It reads nothing from the database itself."""
