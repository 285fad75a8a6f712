"""Runtime: the Proactor (the owner of every part), its lifecycle, status and health."""
