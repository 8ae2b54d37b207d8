"""Export for TF Serving, the gRPC/REST client, the local development server and prediction."""
