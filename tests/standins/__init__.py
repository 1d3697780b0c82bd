"""Local stand-ins for the outside world (AWS, Bitbucket), shared by the tests, `make demo`
and `make bench`. Loopback only. The pipe never imports this package."""
