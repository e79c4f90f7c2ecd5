"""`/api/v1/auth/*` (tokens for API keys, rotation, logout, who am I) and `/api/v1/admin/*`."""
