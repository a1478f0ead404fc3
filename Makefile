# Shortcuts; the scripts are the source of truth (README: scripts/demo.sh, scripts/test.sh).
.PHONY: demo test lint images lab-up lab-down
demo:
	scripts/demo.sh
test:
	scripts/test.sh
lint:
	scripts/test.sh tests/lint
images:
	scripts/build-images.sh
lab-up:
	scripts/lab.sh up
lab-down:
	scripts/lab.sh down
