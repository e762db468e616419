"""Organizations, workspaces, members and invitations."""
