"""hubsim's Xet storage (huggingface.co/docs/xet): the Hub's token endpoints and a CAS server.

- `hashes`: chunk, xorb, file and verification hashes (blake3, the aggregated merkle tree);
- `xorb`: serialized xorbs read, checked against their name, and decompressed;
- `shard`: shards read (uploads) and written (global dedupe answers);
- `storage`: the CAS's state (xorbs, registered files, dedupe index, tokens, grants) and its checks;
- `cas_api`: the CAS's HTTP routes under `/_xet/{store}/` and its signed storage URLs under `/_xet-storage/`;
- `hub_api`: the Hub's `xet-read-token` / `xet-write-token` routes and the Xet headers of `resolve`.
"""
