"""The ``sentiment-model`` command: publish or pack a model bundle by hand, without the Pulumi program."""
