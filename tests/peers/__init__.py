"""Stateful fakes of the outside services hordebot talks to, served on 127.0.0.1 port 0."""
