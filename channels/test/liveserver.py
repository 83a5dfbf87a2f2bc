from django.test.testcases import TransactionTestCase


class ChannelLiveServerTestCase(TransactionTestCase):
    pass
