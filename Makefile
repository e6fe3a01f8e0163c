# Shortcuts for the scripts the README names (scripts/demo and scripts/test work without make).
.PHONY: demo test build bench clean deb man

build:
	scripts/bootstrap

demo:
	scripts/demo

test:
	scripts/test

bench: build
	.venv/bin/python benchmarks/run.py

deb:
	scripts/build-deb

man: build
	.venv/bin/python scripts/gen-man build/man

clean:
	rm -rf build dist verify/*.so verify/_*.c verify/native/*.so verify/native/_*.c
