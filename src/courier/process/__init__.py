"""The process: the image's entrypoint, the roles it runs, the `MODE=all` supervisor and the
healthcheck. Keep it."""
