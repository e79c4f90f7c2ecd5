"""Authentication (JWT and API keys), roles and guards, rate limits, security headers, the response cache."""
