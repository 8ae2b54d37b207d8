"""The parts of the local TF Serving stand-in that serving/local_server.py starts and stops.

servable (shared types) <- signatures (request semantics) <- loader (versions) <- servicers (gRPC) <- rest;
each imports only those to its left.
"""
