"""hearthlm: run Llama- and Qwen-family language models on the CPU."""
