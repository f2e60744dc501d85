"""What an email says: parsing, classification, quoting, subjects, language, authenticity tokens.

Pure: nothing here touches the database, the network or the clock.
"""
