"""Deployment helpers: the reverse-proxy configuration for several dashboard replicas."""
