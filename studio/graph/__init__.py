"""The workflow document: nodes, typed links, validation, order, cache keys, JSON. Stdlib only."""
