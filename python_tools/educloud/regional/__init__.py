"""The regional topology (issue #9): its hosts, HAProxy's view, Patroni's view, probes."""
