"""The documentation pages (Swagger UI, Redoc, GraphiQL), served with every asset from the service.

The pages load nothing from another host: the Swagger UI and Redoc bundles come from the pinned
`drf-spectacular-sidecar` wheel, GraphiQL and React from the pinned
`graphene-django-graphiql-static` wheel (both only files here: neither package is imported), and
each page's start-up code from `static/` beside this file. No page has inline script, so each
page's Content-Security-Policy (`CSP_BY_PAGE`) allows scripts from the service alone.
"""
