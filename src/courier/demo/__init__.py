"""Example business code: replace this package (and `courier.service`) in a real service."""
