"""The Docker emulator: Lambda execution environments as containers behind simulated NAT.

- ``engine``: find the Docker daemon or say how to start one.
- ``labels``: every object a run creates carries ``lambdatwin.run=<id>``;
  ``teardown`` removes them (``lambdatwin emulate down``).
- ``images``: the base image (debootstrap + ``docker import``) and the worker
  image (wheels installed offline), both tagged by a content hash.
- ``network``: the public network (S3 endpoint, rendezvous) and NATed worker LANs.
- ``nat``: the router rules of each NAT preset.
"""
