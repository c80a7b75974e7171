"""Request and response models of the API (requests: ``*Create``/``*Update``/``*Request``; responses: ``*Out``)."""
