# consumer
import pika
import time

def train_model(task):
    print(f"Processing task: {task}")
    time.sleep(2)  # simulated training time
    print(f"Task {task} completed.")

def receive_train_tasks():
    connection = pika.BlockingConnection(pika.ConnectionParameters('localhost'))
    channel = connection.channel()
    channel.queue_declare(queue='train_tasks')
    def callback(ch, method, properties, body):
        task = body.decode()
        train_model(task)
    channel.basic_consume(queue='train_tasks', on_message_callback=callback, auto_ack=True)
    print('Waiting for tasks...')
    channel.start_consuming()

if __name__ == "__main__":
    receive_train_tasks()
