# Shortcuts for the scripts the README names (scripts/demo and scripts/test work without make).
.PHONY: demo test build bench clean

build:
	scripts/bootstrap

demo:
	scripts/demo

test:
	scripts/test

bench: build
	.venv/bin/python benchmarks/run.py

clean:
	rm -rf build verify/*.so verify/_*.c
