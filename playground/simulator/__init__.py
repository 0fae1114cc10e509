"""A local stand-in for AIgateway: same HTTP contract, real rendered videos, fault knobs."""
