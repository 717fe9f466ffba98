"""Runtime operators. The contract every operator fills is in :mod:`.base`."""
