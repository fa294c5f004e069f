"""The web side of ingest: the webhook endpoints, how they prove and store a request, and
the web server that runs them."""
