"""Ingest from a message stream: ``certmon consume`` reads incidents and sensor alerts that publishers send.

``broker.py`` is the small interface the consumer needs of a broker (fetch a batch, acknowledge, hand back,
dead-letter); ``jetstream.py`` implements it on NATS JetStream. ``storing.py`` writes a batch through the same store
functions as the HTTP routes and knows nothing of brokers; ``consumer.py`` is the loop between the two, with its
own ``/metrics`` and ``/healthz``.
"""
