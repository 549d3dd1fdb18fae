"""The embedded local stack: moto's server, Redis and a local MediaConvert on 127.0.0.1."""
