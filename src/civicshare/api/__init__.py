"""The REST API: FastAPI routers over the core. They parse, authorise and format; the Node does the work."""
