"""File formats: PNG metadata, workflow files, safe image loading. Stdlib, PIL and numpy only."""
