"""logpond: a self-hostable log analytics server that speaks PostHog's APIs."""

__version__ = "0.1.0"
