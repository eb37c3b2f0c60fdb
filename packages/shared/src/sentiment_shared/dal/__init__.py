"""The data-access layer of the items table's dashboard counters: one module per job.

* :mod:`~sentiment_shared.dal.keys`: how counter items are keyed (ids, shards, the UTC day, bookkeeping rows);
* :mod:`~sentiment_shared.dal.writes`: the counter deltas a batch's first writes add, as transaction actions
  (:meth:`sentiment_shared.adapters.DynamoItemsTable.set_sentiments` sends them with the item updates);
* :mod:`~sentiment_shared.dal.read_model`: what the dashboard reads (:func:`~.read_model.read_summary`);
* :mod:`~sentiment_shared.dal.backfill`: every counter recomputed from the items.

The DynamoDB wire level they share (attribute values decoded with ``TypeDeserializer``, the batch calls'
bounded, jittered re-sends) is :mod:`sentiment_shared.dynamo`; the adapters of the ports use it too.

The analysis writes a batch's first results and their counts in ONE DynamoDB transaction: each item's
update carries the condition "this item has no sentiment yet", and the batch's counter deltas ride in the
same transaction, so SQS redelivery, a duplicate message, two concurrent first writes or a later
re-analysis count once, and a write that fails counts nothing. Each counter is split into
:data:`~.keys.COUNTER_SHARDS` shard items (``<counter id>#<shard>``); a transaction adds its deltas to one
shard chosen at random, so no single item takes more than a small share of the writes (and concurrent
batches rarely collide), and a reader sums the shards (and the unsharded id, the layout before the shards,
so an older table reads right). Counter items (``item_id`` prefix ``counter#``):

==========================================  ====================================================
``counter#all#<shard>``                     ``total``, ``positive``, ``negative``, ``neutral``;
                                            ``sources`` (string set of the per-source counter ids)
``counter#day#<YYYY-MM-DD>#<shard>``        the same counts for the items analyzed that UTC day, ``date``
``counter#source#<sha256[:32]>#<shard>``    the same counts for one source, ``source`` (its name)
==========================================  ====================================================

Pending items need no counter: ingestion's sparse pending index (``pending-by-age``) holds exactly the
items stored and not analyzed yet, so the read model counts it (``Select=COUNT``).
"""
