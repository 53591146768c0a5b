"""Silhouette and Dunn (placeholder, filled in next)."""
