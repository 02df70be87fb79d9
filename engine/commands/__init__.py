"""`pitwall` commands that belong to no single package: `up` (everything on the embedded Redis),
`engine` (the stages), access (users, tokens) and the session archive. A package's own command
is its commands.py."""
