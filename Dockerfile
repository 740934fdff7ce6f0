# CPU image of Weight-Space Explorer: the same requirements file and start command as the README.
FROM python:3.11-slim
WORKDIR /app
# No C++ compiler: nothing is compiled at run time. Only the opt-in `train --compile` (torch.compile's CPU
# backend) needs one; add `RUN apt-get update && apt-get install -y --no-install-recommends g++` to use it.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 8501
CMD ["streamlit", "run", "app/main.py", "--server.port=8501", "--server.address=0.0.0.0"]
