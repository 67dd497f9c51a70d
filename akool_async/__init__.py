"""akool_async: async-first SDK for the AKOOL Face Swap API."""
