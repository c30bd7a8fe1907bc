#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The nbd driver's asynchronous path (test-submit.c) against nbdkit.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbdclient/lib.sh"
need nbdkit
nbdkit_start mem memory 64M || { echo "1..1"; not_ok "nbdkit starts"; exit 1; }
"$BUILD_ROOT/tests/nbdclient/test-nbdclient-submit" "$(uri mem)"
