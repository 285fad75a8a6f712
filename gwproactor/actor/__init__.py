"""Actors: the communicator and actor base classes, thread actors (a worker thread talking to
the loop through queues) and the built-in admin actor."""
