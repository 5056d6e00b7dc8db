"""`python -m tinykiln.tune_rpc`: a tune=1 device server behind a TVM RPC tracker (tinykiln.tune.rpc
has the server and its documentation; this module is its command line's name)."""
from tinykiln.tune.rpc import main

if __name__ == "__main__":
    raise SystemExit(main())
