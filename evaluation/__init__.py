"""What scores, predicts and reports on one run: metrics, test-time augmentation, evaluate and
predict, embeddings and verification metrics, the val report, selection of the best weights,
submission files and the figures. Imports utils, data and models; never engine, studies or
config (its functions take plain arguments)."""
