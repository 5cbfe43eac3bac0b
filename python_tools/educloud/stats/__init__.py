"""Usage statistics (C12): aggregated, small groups masked."""
