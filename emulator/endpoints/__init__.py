"""AWS-compatible endpoints of the twin (``lambdatwin serve``): see :mod:`emulator.endpoints.server`."""
