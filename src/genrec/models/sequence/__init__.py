"""Sequence models (GRU4Rec, SASRec, BERT4Rec) and generative retrieval with semantic IDs
(TIGER), with the sequence helpers they share."""
