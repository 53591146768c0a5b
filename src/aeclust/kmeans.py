"""K-means from scratch (placeholder, filled in next)."""
