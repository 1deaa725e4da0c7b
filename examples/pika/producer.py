# producer
import pika

def send_train_task(task):
    connection = pika.BlockingConnection(pika.ConnectionParameters('localhost'))
    channel = connection.channel()
    channel.queue_declare(queue='train_tasks')
    channel.basic_publish(exchange='', routing_key='train_tasks', body=task)
    print(f"Sent task: {task}")
    connection.close()

if __name__ == "__main__":
    send_train_task("model_train_001")
