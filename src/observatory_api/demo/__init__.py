"""Demo data: a deterministic generator of realistic telemetry, and the seeding that stores it."""
