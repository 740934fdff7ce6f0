# CPU image of Weight-Space Explorer: the same requirements file and start command as the README.
FROM python:3.11-slim
WORKDIR /app
# a C++ compiler for torch.compile and for the fused NG-GNN kernel (core/kernels), built on first use
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 8501
CMD ["streamlit", "run", "app/main.py", "--server.port=8501", "--server.address=0.0.0.0"]
