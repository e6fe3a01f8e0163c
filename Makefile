# The two commands of the README:
#   make demo   set up, write a sample store, scan it
#   make test   set up everything the tests need and run the whole suite
.PHONY: demo test build bench clean

DEMO_DIR ?= /tmp/archverify-demo

build:
	scripts/bootstrap

demo: build
	rm -rf $(DEMO_DIR)
	.venv/bin/archverify sample $(DEMO_DIR)
	-.venv/bin/archverify scan --config $(DEMO_DIR)/archipelago.conf

test:
	scripts/bootstrap --test
	.venv/bin/python -m pytest -q tests

bench: build
	.venv/bin/python benchmarks/run.py

clean:
	rm -rf build verify/*.so verify/_scan.c verify/_rados.c
