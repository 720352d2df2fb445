"""codeexec-kafka: the EventBus port on Kafka, through aiokafka."""

from codeexec_kafka.bus import AioKafkaEventBus
from codeexec_kafka.settings import KafkaSettings, KafkaSettingsError
from codeexec_kafka.subscription import AioKafkaSubscription

__all__ = ["AioKafkaEventBus", "AioKafkaSubscription", "KafkaSettings", "KafkaSettingsError"]
