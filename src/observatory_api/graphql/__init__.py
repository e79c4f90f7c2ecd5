"""GraphQL at `/graphql`: the same data, roles and redaction as REST, batched through DataLoaders."""
