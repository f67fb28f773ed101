"""Load against a served model: arrival schedule and the one sending loop, the one KServe v2 client in its pinned
process, open-loop runs (plain and streamed), capacity / rate ladder / goodput, the M/D/1 check and the serving-config
search."""
