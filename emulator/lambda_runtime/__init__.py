"""A Lambda execution platform: the Runtime API, execution environments and the invoke service.

- ``runtime_api``: the Lambda Runtime API (``/2018-06-01/runtime/...``), one
  server per execution environment, so the unmodified ``awslambdaric`` client
  drives the handler exactly as on AWS.
- ``environment``: an execution environment's lifecycle (INIT, INVOKE, timeout,
  death); ``ProcessEnvironment`` runs the runtime as a host OS process. The
  Docker backend subclasses it with a container.
- ``service``: ``LambdaService``, the ``invoke`` entry point: concurrency
  limits, warm reuse, idle expiry, START/END/REPORT lines, invocation records.
"""
